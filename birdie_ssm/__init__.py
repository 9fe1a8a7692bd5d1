"""birdie-ssm: state space language models pretrained with a dynamic mixture of objectives."""

__version__ = "0.1.0"
