"""``raytag verify``: a person checks a well-chosen sample of a manifest's labels.

The sample (:mod:`raytag.verify.pick`) puts the label audit's suspects first and then spreads
over every tag's labelled positives and negatives; the page (:mod:`raytag.verify.page`) is one
self-contained HTML file with a short audio clip of each track (:mod:`raytag.verify.clips`);
the person's decisions come back as a CSV (:mod:`raytag.verify.decisions`) and become the
``verified`` rows of a new manifest (:mod:`raytag.verify.apply`). The command's steps are in
:mod:`raytag.verify.workflow`.
"""
