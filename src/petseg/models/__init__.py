"""The models: their names and input facts (spec), the networks, building one by name, checkpoints."""
