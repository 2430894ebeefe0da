"""CLIP at work: what people do with a trained CLIP, on the command line and in a local page.

- ``embed``: a loaded model with its identity (a hash of its weights), reading images of any mode and
  embedding them in batches;
- ``index``: ``miniclip index DIR`` -- a folder's images embedded once, updated incrementally;
- ``search``: ``miniclip search INDEX "a red star"`` -- exact cosine search by one matrix product;
- ``tag``: ``miniclip tag DIR --labels ...`` -- zero-shot labels for every image, as a CSV;
- ``serve``: ``miniclip serve MODEL`` -- a page to draw a shape and see it named (needs the [demo] extra).
"""
