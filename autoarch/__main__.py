"""`python -m autoarch ...`: the same command line as the `autoarch` script."""

from autoarch.cli import main

if __name__ == "__main__":
    main()
