"""`python -m inferlab` runs the command-line interface."""

from inferlab.cli.main import main

main()
