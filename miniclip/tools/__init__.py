"""Tools around the core: what miniclip was built with, malloc settings, the gradient-check table.

    info.py                   build_info(): the compiled kernels, OpenMP, threads
    memory.py                 malloc settings that keep a training step's freed memory for reuse
    gradcheck_suite.py        the ``miniclip gradcheck`` table over every op
    model_gradcheck_cases.py  its layer and model cases
"""
