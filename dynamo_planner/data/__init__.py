"""Data bundled with the package: the default replay trace and profile (see README.md)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["AZURE_CONV_TRACE", "DATA_DIR", "H200_PROFILE_DIR"]

DATA_DIR = Path(__file__).resolve().parent
AZURE_CONV_TRACE = DATA_DIR / "traces" / "azure2023" / "AzureLLMInferenceTrace_conv.csv"
H200_PROFILE_DIR = DATA_DIR / "profiles" / "h200_llama3.1-8b-fp8"
