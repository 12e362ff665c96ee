"""modelroute: a Kubernetes-native, multi-region router for OpenAI-compatible LLM APIs."""

__version__ = "0.1.0"
