"""Data: tokenizers and the text -> tokens -> .bin preparation shared by every dataset."""
