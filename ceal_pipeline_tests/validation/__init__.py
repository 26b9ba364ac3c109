"""Tests of the MNIST / CIFAR-10 validation benchmarks."""
