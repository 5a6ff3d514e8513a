"""Write analysis rows to CSV or JSON Lines a source at a time, and read back the sources a file holds."""
import csv
import io
import json
from pathlib import Path

FORMATS = (".csv", ".jsonl")


class TableError(ValueError):
    """An output file this run cannot write or resume."""


def table_format(path):
    """'.csv' or '.jsonl' from the file name; TableError for anything else."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise TableError(f"{path}: the output must end in {' or '.join(FORMATS)}")
    return suffix


def done_sources(path, columns):
    """The sources already in an output file (for --resume); TableError if it has other columns."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return set()
    with open(path, newline="", encoding="utf-8") as f:
        if table_format(path) == ".csv":
            reader = csv.DictReader(f)
            if reader.fieldnames != columns:
                raise TableError(f"{path}: its columns are not this run's, so it cannot be resumed")
            return {row["source"] for row in reader}
        try:
            return {json.loads(line)["source"] for line in f if line.strip()}
        except (json.JSONDecodeError, KeyError, TypeError):
            raise TableError(f"{path}: not JSON Lines with a source in every line, so it cannot be resumed") from None


class TableWriter:
    """Appends rows to an output file; a header first where a CSV file is new."""

    def __init__(self, path, columns, append=False):
        self.path, self.columns = Path(path), columns
        self.csv = table_format(path) == ".csv"
        fresh = not append or not self.path.is_file() or self.path.stat().st_size == 0
        self.file = open(self.path, "w" if fresh else "a", newline="", encoding="utf-8")
        if fresh and self.csv:
            csv.DictWriter(self.file, columns, lineterminator="\n").writeheader()
            self.file.flush()

    def write(self, rows):
        """Append one source's rows in one write call and flush, so that a stopped run leaves whole sources."""
        buffer = io.StringIO()
        if self.csv:
            csv.DictWriter(buffer, self.columns, lineterminator="\n").writerows(rows)
        else:
            buffer.writelines(json.dumps(row) + "\n" for row in rows)
        self.file.write(buffer.getvalue())
        self.file.flush()

    def close(self):
        """Close the file."""
        self.file.close()
