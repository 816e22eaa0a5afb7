"""``python -m microsam_fiji.imagej [--fiji DIR] [--ij JAR]``: same as ``microsam-fiji fiji``."""
import sys

from microsam_fiji.cli import main

if __name__ == "__main__":
    sys.exit(main(["fiji", *sys.argv[1:]]))
