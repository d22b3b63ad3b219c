"""What the web app does, without Gradio: the model registry, training jobs, and the tabs' logic."""
