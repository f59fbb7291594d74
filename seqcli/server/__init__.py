"""The translation server (`seqcli serve`): an HTTP app over a Translator, with dynamic batching."""
