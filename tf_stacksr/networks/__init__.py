"""Generator (U-Net G1 + stacked upsampling stages) and per-stage conditional PatchGANs."""

from tf_stacksr.networks.stacked import build_discriminators, build_generator, run_stages

__all__ = ["build_generator", "build_discriminators", "run_stages"]
