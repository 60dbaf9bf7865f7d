"""Oversight: what operators and auditors see: the queue, network health, receipts, checkpoints, exports."""
