"""Authorized agents: the Data Rights Protocol 1.0's Privacy Infrastructure Provider endpoints under /drp."""
