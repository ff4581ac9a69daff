"""Training: pretraining the embedded model, style experts into the shared MoE LoRA (with rank
pruning), subject LoRAs, and the pairs and photos they learn from."""
