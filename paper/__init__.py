"""The study: the paper's artifacts (table1..table7, fig3..fig8), what each needs
(runs, measurements), and ``reproduce``, which trains, measures and writes them.

Sits above both libraries: it imports ``repro`` (models, training, measurement) and
``analysis`` (records to tables and figures); neither imports it.

    study.py         what each preset's study contains (architectures, depths, splits)
    artifacts.py     the artifact registry: the runs and measurements each needs
    measurements.py  measurements cached under results/<preset>/measurements
    reproduce.py     ``python cli.py reproduce``: train what is missing, measure, write
    collect.py       one evaluation frame over a results folder (notebooks, fig4)
"""
