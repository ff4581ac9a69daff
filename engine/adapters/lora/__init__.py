"""Plain LoRAs: reading and writing LoRA files (diffusers/peft and kohya keys), folding an update
into a weight and putting it back, and replacing a module by its dotted name."""
