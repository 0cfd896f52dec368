"""The pages' layout, one module per page: each draws what dashboard/data/ read.

Every string from a patient, a unit or a device is passed to Dash as a child string, which
React renders as text; nothing here builds HTML.
"""
