"""``python -m microsam_fiji.bridge [--fiji DIR] [--ij JAR]``: same as ``microsam-fiji fiji``."""
import sys

from ..cli import main

if __name__ == "__main__":
    sys.exit(main(["fiji", *sys.argv[1:]]))
