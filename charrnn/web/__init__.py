"""The web app's Gradio layer: the page (app.py), one module per tab (tabs/), views.py, static/."""
