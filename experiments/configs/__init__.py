"""Config files for `python -m experiments.main --config=experiments/configs/NAME.py`.

Each file defines `get_config() -> ml_collections.ConfigDict`; `default.py` is the
paper's CIFAR-10 recipe and documents every field, the others override it.
"""
