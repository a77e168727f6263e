"""The kernel: executor health and recovery of jobs whose executor died."""

from kuwa.kernel.kernel import Kernel

__all__ = ["Kernel"]
