"""Lets `python -m linkmeter` run the command line."""

from linkmeter.cli import main

main()
