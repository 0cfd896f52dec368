"""What the pages read, with the access check and the access-log row in the same transaction;
the layout lives in dashboard/pages/."""
