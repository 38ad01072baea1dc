"""Reports: figures (matplotlib) and one self-contained HTML file from any set of runs."""
