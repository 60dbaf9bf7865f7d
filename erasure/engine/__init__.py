"""The erasure engine: the queue of steps, the workers that claim them, and what each step does."""
