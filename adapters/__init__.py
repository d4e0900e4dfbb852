"""LoRA adapters: training, registry, manager, router, continual learning."""
