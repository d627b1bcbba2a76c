"""Bad requests for the server tests: the known reproducers, images of every format Pillow saves, and a
seeded generator of mutated requests (raw bytes, broken JSON, abused headers, mutated images)."""

from __future__ import annotations

import io
import json
import random
import warnings
from dataclasses import dataclass, field

import numpy as np

AUTH = ("authorization", "Bearer s3cret")
ROUTES = [
    "/predict",
    "/feedback",
    "/admin/model",
    "/v2/models/pets/infer",
    "/v2/models/pets/versions/1/infer",
]


@dataclass
class Req:
    """One HTTP request: what the fuzz sends in-process (raw ASGI) or over a socket."""

    method: str
    path: str
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    kind: str = "raw"  # what generated it, for the failure report
    valid: bool = False  # a well-formed request that must succeed (200)

    def header_dict(self) -> dict[str, bytes]:
        """Headers for an httpx client: values as UTF-8 bytes, as a raw client would send them."""
        return {k: v.encode() for k, v in self.headers}


def _base_image() -> np.ndarray:
    y, x = np.mgrid[0:16, 0:16]
    return ((x * 16 + y * 3) % 256).astype(np.uint8)


def saved_images() -> dict[str, bytes]:
    """A 16x16 image in every format this Pillow can save (the mode each format takes)."""
    from PIL import Image

    Image.init()
    gray = Image.fromarray(_base_image())
    out = {}
    for fmt in sorted(Image.SAVE):
        for mode in ("L", "RGB", "P", "1", "RGBA"):
            buf = io.BytesIO()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    gray.convert(mode).save(buf, format=fmt)
            except (OSError, ValueError, KeyError, TypeError):
                continue
            out[fmt] = buf.getvalue()
            break
    return out


def reproducer_images() -> dict[str, bytes]:
    """Uploads whose Pillow decoder raises something other than OSError/ValueError."""
    images = saved_images()
    dds = bytearray(images["DDS"])
    dds[80:84] = bytes(4)  # pixel-format flags zeroed: NotImplementedError
    blp = bytearray(images["BLP"])
    blp[4] = 9  # compression byte: BLPFormatError
    spider = bytearray(images["SPIDER"])
    spider[29] = spider[102] = spider[107] = 0x7F  # header floats: AttributeError (no stkoffset)
    tiff = bytearray(images["TIFF"])
    tiff[72] = 2  # a tag's type turned into ASCII: TypeError
    return {"dds": bytes(dds), "blp": bytes(blp), "spider": bytes(spider), "tiff": bytes(tiff)}


def oip_json(n: int = 1, datatype: str = "UINT8") -> dict:
    value = 7 if datatype == "UINT8" else 0.5
    return {
        "inputs": [
            {"name": "input", "datatype": datatype, "shape": [n, 1, 28, 28], "data": [value] * (784 * n)}
        ]
    }


def oip_binary(n: int = 1) -> tuple[bytes, str]:
    x = np.full((n, 1, 28, 28), 0.25, dtype=np.float32)
    header = {
        "inputs": [
            {
                "name": "input",
                "datatype": "FP32",
                "shape": list(x.shape),
                "parameters": {"binary_data_size": x.nbytes},
            }
        ],
        "outputs": [{"name": "logits", "parameters": {"binary_data": True}}],
    }
    head = json.dumps(header).encode()
    return head + x.tobytes(), str(len(head))


def reproducers() -> list[Req]:
    """Each request that once answered 500; each must answer 4xx ``{"error": ...}``."""
    j = "application/json"
    oip = "/v2/models/pets/infer"
    out = []
    for datatype in (["FP32"], {"a": 1}):
        body = oip_json()
        body["inputs"][0]["datatype"] = datatype
        out.append(Req("POST", oip, json.dumps(body).encode(), [("content-type", j)], "oip datatype"))
    head, _ = oip_binary()
    for bad_length in ("²", "9" * 5000, "١٢"):
        out.append(
            Req("POST", oip, head, [("inference-header-content-length", bad_length)], "oip header length")
        )
    for name, data in reproducer_images().items():
        out.append(Req("POST", "/predict", data, [("content-type", "image/x-any")], f"image {name}"))
    out.append(Req("POST", "/predict", b"\x89PNG broken", [("content-type", "image/png")], "unreadable"))
    out.append(Req("POST", "/predict", b'{"pixels": NaN}', [("content-type", j)], "NaN token"))
    out.append(Req("POST", "/predict", b"{}", [("content-length", "²")], "content-length"))
    label = {"prediction_id": "0" * 32, "label": "²"}
    out.append(Req("POST", "/feedback", json.dumps(label).encode(), [AUTH, ("content-type", j)], "label"))
    nul = {"prediction_id": "ab\u0000cd", "label": 1}
    out.append(Req("POST", "/feedback", json.dumps(nul).encode(), [AUTH, ("content-type", j)], "NUL id"))
    for ref in ("pets@²", "pets@99999999999999999999", "pets@2147483648", "pets@0", "pets@\u0000", "²"):
        body = json.dumps({"model": ref}).encode()
        out.append(Req("POST", "/admin/model", body, [AUTH, ("content-type", j)], f"model {ref!r}"))
    return out


# -- the seeded generator ---------------------------------------------------------------------------

_ODD_VALUES: list[object] = [
    None,
    True,
    -1,
    0,
    2**31,
    2**63 - 1,
    -(2**63),
    1e308,
    -0.0,
    "",
    "²",
    "\u0000",
    "x" * 300,
    "١",
    [],
    {},
    [[]],
    {"": None},
    [1, [2, [3]]],
    "pets@1",
    "FP32",
    "input",
]
_ODD_HEADERS = [
    ("content-length", "²"),
    ("content-length", "-1"),
    ("content-length", "9" * 40),
    ("content-length", " 5"),
    ("inference-header-content-length", "²"),
    ("inference-header-content-length", "9" * 5000),
    ("inference-header-content-length", "-0"),
    ("inference-header-content-length", "0x10"),
    ("authorization", "Bearer"),
    ("authorization", "Bearer s3cret extra"),
    ("authorization", "\u00e9" * 50),
    ("content-type", "multipart/form-data"),
    ("content-type", "multipart/form-data; boundary="),
    ("content-type", "image/"),
    ("content-type", ";;;"),
    ("content-type", "application/json; charset=utf-16"),
    ("x-long", "a" * 20_000),
    ("accept", "*/*" * 100),
]


class Generator:
    """Seeded stream of requests: every draw depends only on the seed and the draw's position."""

    def __init__(self, seed: int, prediction_id: str) -> None:
        self.rng = random.Random(seed)
        self.images = saved_images()
        self.prediction_id = prediction_id
        self.kinds = [
            (self.raw, 2),
            (self.json_mutation, 4),
            (self.oip_mutation, 4),
            (self.image_mutation, 6),
            (self.header_abuse, 2),
            (self.multipart_mutation, 2),
            (self.valid, 1),
        ]

    def draw(self) -> Req:
        makers, weights = zip(*self.kinds, strict=True)
        return self.rng.choices(makers, weights)[0]()

    def valid(self) -> Req:
        r = self.rng
        j = [("content-type", "application/json")]
        choice = r.randrange(4)
        if choice == 0:
            return Req(
                "POST",
                "/predict",
                json.dumps({"pixels": [[r.randrange(256)] * 28] * 28}).encode(),
                j,
                "ok",
                True,
            )
        if choice == 1:
            body, length = oip_binary(r.randint(1, 3))
            return Req(
                "POST",
                "/v2/models/pets/infer",
                body,
                [("inference-header-content-length", length)],
                "ok",
                True,
            )
        if choice == 2:
            image = self.images[r.choice(["PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP"])]
            return Req("POST", "/predict", image, [("content-type", "image/any")], "ok", True)
        label = {"prediction_id": self.prediction_id, "label": r.choice(["cat", "dog", 0, 1])}
        return Req("POST", "/feedback", json.dumps(label).encode(), [AUTH, *j], "ok", True)

    def raw(self) -> Req:
        r = self.rng
        body = r.randbytes(r.choice([0, 1, 7, 64, 500, 3000]))
        headers = [
            (
                "content-type",
                r.choice(["application/json", "image/png", "text/plain", "application/octet-stream"]),
            )
        ]
        if r.random() < 0.5:
            headers.append(AUTH)
        path = r.choice(
            [*ROUTES, "/v2/models/x/infer", "/v2/models//infer", "/v2/models/pets/versions/%FF/infer"]
        )
        return Req(r.choice(["POST", "POST", "POST", "GET", "PUT"]), path, body, headers, "raw")

    def _mutate(self, value: object, depth: int = 0) -> object:
        """``value`` with one node replaced, removed or added (JSON-shaped)."""
        r = self.rng
        if isinstance(value, dict) and value and depth < 6 and r.random() < 0.8:
            key = r.choice(list(value))
            out = dict(value)
            action = r.random()
            if action < 0.15:
                del out[key]
            elif action < 0.25:
                out[r.choice(["extra", "", "\u0000", "parameters", "id"])] = r.choice(_ODD_VALUES)
            else:
                out[key] = self._mutate(value[key], depth + 1)
            return out
        if isinstance(value, list) and value and depth < 6 and r.random() < 0.7:
            out_list = list(value)
            i = r.randrange(len(out_list))
            action = r.random()
            if action < 0.1:
                del out_list[i]
            elif action < 0.2:
                out_list.append(r.choice(_ODD_VALUES))
            else:
                out_list[i] = self._mutate(out_list[i], depth + 1)
            return out_list
        return r.choice([*_ODD_VALUES, float("nan"), float("inf"), r.randint(-(2**70), 2**70), r.random()])

    def _text(self, value: object) -> bytes:
        text = json.dumps(value).encode()  # NaN/Infinity tokens as some clients write them
        if self.rng.random() < 0.15 and text:
            i = self.rng.randrange(len(text))
            text = (
                text[:i]
                + self.rng.choice([b"", b"\x00", b"}", b"\xff", b"[" * 2000, b"\\ud800"])
                + text[i + 1 :]
            )
        return text

    def json_mutation(self) -> Req:
        r = self.rng
        j = [("content-type", "application/json")]
        templates = [
            ("/predict", {"pixels": [[1] * 28] * 28}, j),
            ("/feedback", {"prediction_id": self.prediction_id, "label": "cat"}, [AUTH, *j]),
            ("/admin/model", {"model": "pets@1"}, [AUTH, *j]),
        ]
        path, template, headers = r.choice(templates)
        return Req("POST", path, self._text(self._mutate(template)), headers, "json")

    def oip_mutation(self) -> Req:
        r = self.rng
        path = r.choice([*ROUTES[3:], "/v2/models/pets/versions/99999999999999999999/infer"])
        if r.random() < 0.5:
            return Req(
                "POST", path, self._text(self._mutate(oip_json(1, r.choice(["UINT8", "FP32"])))), [], "oip"
            )
        body, length = oip_binary()
        head_len = int(length)
        header = json.loads(body[:head_len])
        mutated = self._text(self._mutate(header))
        blob = body[head_len:]
        if r.random() < 0.3:
            blob = blob[: r.randrange(len(blob) + 1)]
        hlen = r.choice([str(len(mutated)), str(len(mutated) + r.randint(-5, 5)), length, "²", "1" * 30])
        return Req("POST", path, mutated + blob, [("inference-header-content-length", hlen)], "oip binary")

    def image_mutation(self) -> Req:
        r = self.rng
        fmt = r.choice(sorted(self.images))
        data = bytearray(self.images[fmt])
        for _ in range(r.randint(1, 6)):
            action = r.random()
            if not data:
                break
            i = r.randrange(min(len(data), 256)) if r.random() < 0.7 else r.randrange(len(data))
            if action < 0.5:
                data[i] = r.choice([0, 1, 2, 0x7F, 0x80, 0xFF, r.randrange(256)])
            elif action < 0.65:
                data[i : i + 4] = r.choice(
                    [b"\xff\xff\xff\x7f", b"\x00\x00\x00\x80", bytes(4), b"\x01\x00\x00\x00"]
                )
            elif action < 0.8:
                del data[r.randrange(len(data)) :]
            elif action < 0.9:
                data[i:i] = r.randbytes(r.randint(1, 32))
            else:
                data[i] ^= 1 << r.randrange(8)
        if r.random() < 0.3:
            boundary = "fuzzboundary"
            body = (
                (
                    f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.{fmt.lower()}"\r\n'
                    f"Content-Type: image/{fmt.lower()}\r\n\r\n"
                ).encode()
                + bytes(data)
                + f"\r\n--{boundary}--\r\n".encode()
            )
            return Req(
                "POST",
                "/predict",
                body,
                [("content-type", f"multipart/form-data; boundary={boundary}")],
                f"image {fmt}",
            )
        return Req(
            "POST",
            "/predict",
            bytes(data),
            [("content-type", r.choice(["image/x", "application/octet-stream"]))],
            f"image {fmt}",
        )

    def header_abuse(self) -> Req:
        r = self.rng
        base = r.choice([self.valid, self.json_mutation, self.oip_mutation])()
        extra = r.sample(_ODD_HEADERS, r.randint(1, 3))
        names = {name for name, _ in extra}
        headers = [(k, v) for k, v in base.headers if k not in names or r.random() < 0.3] + extra
        return Req(base.method, base.path, base.body, headers, "headers")

    def multipart_mutation(self) -> Req:
        """A multipart upload whose envelope is broken: boundaries, part headers, part counts."""
        r = self.rng
        boundary = r.choice(["b", "fuzz-boundary", "x" * 80, "é", ""])
        parts = []
        for i in range(r.choice([0, 1, 1, 2, 12])):
            disposition = r.choice(
                [
                    f'form-data; name="file"; filename="x{i}.png"',
                    f'form-data; name="f{i}"',
                    "form-data; name=\"file\"; filename*=UTF-8''%FF%FE",
                    "attachment",
                    "",
                ]
            )
            head = f"Content-Disposition: {disposition}\r\nContent-Type: {r.choice(['image/png', '', 'x/y'])}"
            parts.append(f"--{boundary}\r\n{head}\r\n\r\n".encode() + self.images["PNG"])
        body = b"\r\n".join(parts) + r.choice([f"\r\n--{boundary}--\r\n".encode(), b"", b"\r\n--"])
        if body and r.random() < 0.5:
            i = r.randrange(len(body))
            body = body[:i] + r.choice([b"", b"\r\n", b"--", b"\x00"]) + body[i + r.randint(0, 8) :]
        declared = r.choice([f"boundary={boundary}", f'boundary="{boundary}"', "boundary=other", ""])
        return Req(
            "POST",
            "/predict",
            body,
            [("content-type", f"multipart/form-data; {declared}".rstrip())],
            "multipart",
        )


# -- text models ------------------------------------------------------------------------------------

TEXT_ROUTES = ["/predict", "/v2/models/reviews/infer", "/v2/models/reviews/versions/1/infer"]
_ODD_TEXTS = [
    "a good film",
    "",
    " ",
    "\u00a0\u2003\n",  # Unicode spaces only
    "\u0000",
    "\u200b",  # zero-width space: not whitespace to Python
    "\U0001f600" * 50,
    "e\u0301" * 200,  # combining accents
    "\u202edoog\u202c",  # right-to-left override
    "word " * 5000,  # cut at max_length tokens, and at CHARS_PER_TOKEN * max_length characters first
    "x" * 20_000,  # one long unknown word
    "١٢٣ ²",
    "\r\n".join(["line"] * 50),
]


def oip_text_binary(texts: list[bytes], count: int | None = None) -> tuple[bytes, str]:
    """An OIP request carrying ``texts`` as a BYTES tensor in binary form (4-byte little-endian lengths)."""
    blob = b"".join(len(t).to_bytes(4, "little") + t for t in texts)
    spec = {
        "name": "text",
        "datatype": "BYTES",
        "shape": [len(texts) if count is None else count],
        "parameters": {"binary_data_size": len(blob)},
    }
    head = json.dumps({"inputs": [spec]}).encode()
    return head + blob, str(len(head))


class TextGenerator:
    """Seeded stream of requests to a text model (``reviews``): odd texts in every form the server
    takes, BYTES tensors with broken length prefixes, and mutated JSON."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.kinds = [(self.text_form, 4), (self.bytes_mutation, 4), (self.json_mutation, 2)]

    def draw(self) -> Req:
        makers, weights = zip(*self.kinds, strict=True)
        return self.rng.choices(makers, weights)[0]()

    def _odd_text(self) -> str:
        r = self.rng
        if r.random() < 0.3:
            return "".join(
                chr(r.choice([r.randrange(32, 127), r.randrange(0x80, 0xD800)]))
                for _ in range(r.randint(1, 40))
            )
        return r.choice(_ODD_TEXTS)

    def text_form(self) -> Req:
        """One odd text as JSON, text/plain, OIP JSON and OIP binary: valid when it has a visible character."""
        r = self.rng
        text = self._odd_text()
        valid = bool(text.strip())
        choice = r.randrange(4)
        if choice == 0:
            body = json.dumps({"text": text}).encode()
            return Req("POST", "/predict", body, [("content-type", "application/json")], "text json", valid)
        if choice == 1:
            return Req(
                "POST", "/predict", text.encode(), [("content-type", "text/plain")], "text plain", valid
            )
        path = r.choice(TEXT_ROUTES[1:])
        if choice == 2:
            spec = {"name": "text", "datatype": "BYTES", "shape": [2], "data": ["a cat", text]}
            return Req("POST", path, json.dumps({"inputs": [spec]}).encode(), [], "text oip json", valid)
        body, length = oip_text_binary([text.encode(), b"a dog"])
        return Req(
            "POST", path, body, [("inference-header-content-length", length)], "text oip binary", valid
        )

    def bytes_mutation(self) -> Req:
        """A binary BYTES tensor whose prefixes, elements, count or size are off."""
        r = self.rng
        texts = [
            r.choice([b"a cat", b"", b"\xff\xfe", b"\xc3", "é".encode(), b"\x00"])
            for _ in range(r.randint(1, 4))
        ]
        body, length = oip_text_binary(texts, r.choice([None, len(texts) + r.randint(-2, 2), 0, 2**31]))
        head_len = int(length)
        blob = bytearray(body[head_len:])
        for _ in range(r.randint(0, 3)):
            if not blob:
                break
            action, i = r.random(), r.randrange(len(blob))
            if action < 0.4:
                blob[i] = r.randrange(256)  # often inside a length prefix
            elif action < 0.7:
                del blob[i:]
            else:
                blob[i:i] = r.randbytes(r.randint(1, 6))
        if r.random() < 0.5:  # the declared size follows the mutated blob, so the prefixes are what is wrong
            header = json.loads(body[:head_len])
            header["inputs"][0]["parameters"]["binary_data_size"] = len(blob)
            head = json.dumps(header).encode()
            body, length = head + bytes(blob), str(len(head))
        else:
            body = body[:head_len] + bytes(blob)
        return Req(
            "POST",
            r.choice(TEXT_ROUTES[1:]),
            body,
            [("inference-header-content-length", length)],
            "text bytes",
        )

    def json_mutation(self) -> Req:
        r = self.rng
        templates = [
            ("/predict", {"text": "a good film"}),
            (
                TEXT_ROUTES[1],
                {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["a cat"]}]},
            ),
        ]
        path, template = r.choice(templates)
        mutator = Generator.__new__(Generator)  # the image generator's JSON mutations, on this stream
        mutator.rng = r
        body = mutator._text(mutator._mutate(template))
        return Req("POST", path, body, [("content-type", "application/json")], "text json mutation")
