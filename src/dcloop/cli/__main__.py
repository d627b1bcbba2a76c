from dcloop.cli import main

main()
