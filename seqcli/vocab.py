"""Special token ids shared by every SentencePiece model seqcli trains or loads.

The model, the loss and the batches need only these four numbers, not the tokenizer, so they
live here where any layer may import them.
"""

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
