"""The paper's experiments: the command line (`main.py`) and the configs it runs."""
