"""seqcli: recurrent sequence-to-sequence models from the shell."""

__version__ = "0.1.0"
