"""``python -m insertgen ...``: the command line (the same as the ``insertgen`` command)."""

from insertgen.apps.cli import main

if __name__ == "__main__":
    main()
