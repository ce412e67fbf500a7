"""Iterative pruning with a learning-rate schedule per round (also installed as the ``scyc-train`` command).

python train.py                                   # S-Cyc, LeNet-300-100, Fashion-MNIST
python train.py schedule=constant pruner.rounds=5
python train.py -m schedule=scyc,constant seed=0,1,2
"""

from scyc.cli import main

if __name__ == "__main__":
    main()
