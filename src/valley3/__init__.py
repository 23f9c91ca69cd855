"""valley3: train omni multimodal LLMs (text, image, video, audio) for e-commerce with Lightning."""

__version__ = "0.1.0"
