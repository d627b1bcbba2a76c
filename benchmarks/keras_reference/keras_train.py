"""The reference Keras pipeline dcloop replaces, run on PNG folders; prints one JSON line.

Usage (inside the virtualenv benchmarks/keras_reference.py makes):
    python keras_train.py ROOT --epochs 10 --seed 0 --threads 2
ROOT holds train/<class>/*.png and test/<class>/*.png. The design: three 3x3 convolutions of 32, 64
and 128 filters with ReLU, each followed by 2x2 max pooling, flatten, dense 128 ReLU, dropout 0.5,
one sigmoid output (a softmax over the classes beyond two); Adam at its default rate, batch 32;
ImageDataGenerator with rescale 1/255, rotation 40, width/height shift 0.2, shear 0.2, zoom 0.2,
horizontal flip, fill 'nearest', grayscale.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    try:
        from keras.preprocessing.image import ImageDataGenerator
    except ImportError:  # Keras 3 keeps it under legacy only
        from keras.src.legacy.preprocessing.image import ImageDataGenerator

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    keras.utils.set_random_seed(args.seed)
    classes = sorted(os.listdir(os.path.join(args.root, "train")))
    binary = len(classes) == 2
    mode = "binary" if binary else "categorical"
    augment = ImageDataGenerator(
        rescale=1.0 / 255,
        rotation_range=40,
        width_shift_range=0.2,
        height_shift_range=0.2,
        shear_range=0.2,
        zoom_range=0.2,
        horizontal_flip=True,
        fill_mode="nearest",
    )
    flow = {"target_size": (28, 28), "color_mode": "grayscale", "class_mode": mode, "classes": classes}
    train = augment.flow_from_directory(
        os.path.join(args.root, "train"), batch_size=32, shuffle=True, seed=args.seed, **flow
    )
    test = ImageDataGenerator(rescale=1.0 / 255).flow_from_directory(
        os.path.join(args.root, "test"), batch_size=256, shuffle=False, **flow
    )
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(128, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dropout(0.5),
            layers.Dense(1, activation="sigmoid")
            if binary
            else layers.Dense(len(classes), activation="softmax"),
        ]
    )
    loss = "binary_crossentropy" if binary else "categorical_crossentropy"
    model.compile(optimizer=keras.optimizers.Adam(), loss=loss, metrics=["accuracy"])
    t0, cpu0 = time.perf_counter(), time.process_time()
    model.fit(train, epochs=args.epochs, verbose=0)
    train_s, cpu_s = time.perf_counter() - t0, time.process_time() - cpu0
    _, accuracy = model.evaluate(test, verbose=0)
    images = train.samples * args.epochs
    print(
        json.dumps(
            {
                "test_accuracy": float(accuracy),
                "train_s": train_s,
                "cpu_s": cpu_s,  # CPU seconds of all its threads: what other work on the machine cannot inflate
                "images_per_s": images / train_s,
                "train_images": train.samples,
                "test_images": test.samples,
                "keras": keras.__version__,
                "tensorflow": tf.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
