"""The figures: ``layout`` (pure geometry in points) -> ``plots`` (each figure as ``scene`` pages of shapes and
texts) -> ``scene`` (SVG), ``raster`` (PNG, TIFF; Pillow) and ``pdfwrite`` (PDF; fontTools).

Nothing is imported here: ``bsmeth.figures.layout`` stays free of any drawing library (``tables`` uses it).
"""
