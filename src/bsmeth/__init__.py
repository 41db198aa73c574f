"""bsmeth: methylation calls from Sanger reads of cloned bisulfite PCR products."""

__version__ = "0.1.0"
