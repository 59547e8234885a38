// Drop files (or pick them) to upload them; each shows its progress and the status of its asset.
import { useState } from "react";
import { useClient } from "urql";
import { Link } from "wouter";

import { bytes } from "../format";
import { uploadFile, type Progress } from "../upload";

type Row = Progress & { key: string; name: string };

export function Upload() {
  const client = useClient();
  const [rows, setRows] = useState<Row[]>([]);
  const [over, setOver] = useState(false);

  const start = (files: FileList | null) => {
    for (const file of Array.from(files ?? [])) {
      const key = `${file.name}-${Date.now()}-${Math.random()}`;
      setRows((list) => [...list, { key, name: file.name, sent: 0, total: file.size, status: "queued" }]);
      const report = (p: Partial<Progress>) => setRows((list) => list.map((r) => (r.key === key ? { ...r, ...p } : r)));
      uploadFile(client, file, report).catch((e: Error) => report({ status: "failed", error: e.message }));
    }
  };

  return (
    <section>
      <div className={`dropzone${over ? " over" : ""}`} data-testid="dropzone"
        onDragOver={(e) => { e.preventDefault(); setOver(true); }}
        onDragLeave={() => setOver(false)}
        onDrop={(e) => { e.preventDefault(); setOver(false); start(e.dataTransfer.files); }}>
        <p>Drop files here, or</p>
        <label className="button">
          Choose files
          <input type="file" multiple hidden data-testid="file-input" onChange={(e) => { start(e.target.files); e.target.value = ""; }} />
        </label>
      </div>
      <table className="uploads">
        <tbody>
          {rows.map((r) => (
            <tr key={r.key} data-testid="upload-row">
              <td>{r.assetId ? <Link href={`/assets/${encodeURIComponent(r.assetId)}`}>{r.name}</Link> : r.name}</td>
              <td><progress max={r.total || 1} value={r.sent} /> {bytes(r.sent)} / {bytes(r.total)}</td>
              <td>{r.status}</td>
              <td>{r.assetStatus && <span className={`badge status-${r.assetStatus}`} data-testid="upload-status">{r.assetStatus}</span>}</td>
              <td>{r.error && <span role="alert" className="error">{r.error}</span>}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
