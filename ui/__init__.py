"""The dashboard's shared UI layer: session state, cached resources, charts, job polling, messages.

Pages import these helpers so that each page stays "read widgets, call core,
draw". Nothing here does NumPy or Keras maths: the numbers come from ``core``.

- :mod:`ui.frame`     how a page runs inside app.py (and Streamlit's legacy
                      pages-folder mode, handled in that one place)
- :mod:`ui.state`     the session-state keys, their defaults, and how configs
                      and widgets stay in step across page switches
- :mod:`ui.resources` ``st.cache_resource`` / ``st.cache_data`` wrappers around
                      the run store, the worker, records, arrays and models
- :mod:`ui.jobs`      following the training worker's jobs: the one polling loop
- :mod:`ui.charts`    plotly figures with one house style, cached (imports plotly)
- :mod:`ui.controls`  widgets several pages share (the VGG16 weight source)
- :mod:`ui.feedback`  page headers, empty states, and errors shown without tracebacks
- :mod:`ui.sidebar`   the sidebar app.py draws on every page
"""
