"""Train a CycleGAN with HuggingFace Accelerate (thin entry over cyclegan.training).

accelerate launch train_accel.py --config configs/tiny_cpu.yaml [--resume latest|PATH] [key=value ...]
python train_accel.py --config configs/tiny_cpu.yaml train.max_steps=100
"""

from cyclegan.training.cli import main

if __name__ == "__main__":
    main()
