"""Real llama.cpp inference for the tests: a tiny generated GGUF model and engines serving it."""
