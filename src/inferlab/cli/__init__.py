"""The `inferlab` command line: one module per command group."""
