"""Reading models (local or Hub), reading tensors one at a time, and writing sharded output."""
