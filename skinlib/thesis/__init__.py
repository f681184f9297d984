"""The thesis's generated parts: methods chapter, CLAIM checklist, LaTeX tables and figures."""
