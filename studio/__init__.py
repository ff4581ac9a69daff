"""Atelier's studio: the Gradio UI over the engine.

It maps widgets to engine calls and shows what comes back; the engine never imports it.
:func:`studio.app.build_studio` builds the page and :func:`studio.app.launch_studio` serves it.
"""
