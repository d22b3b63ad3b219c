"""The web app's Gradio layer: the page (app.py), one module per tab (tabs/), views.py, static/.

Importing it turns Gradio's analytics and the Hugging Face hub's telemetry off, before gradio is imported.
"""

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
