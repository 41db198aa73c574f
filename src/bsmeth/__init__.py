"""bsmeth: methylation calls from Sanger reads of cloned bisulfite PCR products or amplicon-sequencing FASTQ."""

__version__ = "0.1.0"
