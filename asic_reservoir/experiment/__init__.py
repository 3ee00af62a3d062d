"""Running experiments: input channels (encodings, masks), the experiment loop, run files."""
