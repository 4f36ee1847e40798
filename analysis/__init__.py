"""Run records -> the paper's tables (DataFrames) and figures (matplotlib Figures).

Every artifact is one pure function of DataFrames; the caller (``paper/artifacts.py``,
``paper/reproduce.py``) loads the records, looks artifacts up by name and writes the files::

    table = analysis.table1(evals, analysis.load_reference())
    print(analysis.to_markdown(table))
"""
from analysis.aggregate import pareto_frontier, to_markdown
from analysis.figures import fig3, fig4, fig5, fig6, fig7, fig8
from analysis.reference import PAPER_ANALOGUE, load_reference
from analysis.tables import table1, table2, table3, table4, table5, table6, table7

__all__ = ["PAPER_ANALOGUE", "fig3", "fig4", "fig5", "fig6", "fig7", "fig8", "load_reference",
           "pareto_frontier", "table1", "table2", "table3", "table4", "table5", "table6", "table7",
           "to_markdown"]
