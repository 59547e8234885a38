// Drop files or folders (or pick them) to upload them, optionally into a collection at their
// relative paths; each shows its progress and the status of its asset.
import { useEffect, useRef, useState } from "react";
import { useClient, useQuery } from "urql";
import { Link } from "wouter";

import { assetHref } from "../components/AssetRow";
import { bytes } from "../format";
import { CollectionByNameDocument, CollectionListDocument } from "../generated/graphql";
import { useSession } from "../session";
import { droppedFiles, uploadFile, type Progress } from "../upload";

type Row = Progress & { key: string; name: string; retry?: () => void };
// Files at a time: each is a few small requests and one PUT; the browser's connections are shared with the app.
const PARALLEL = 3;

export function Upload() {
  const client = useClient();
  const { token } = useSession();
  const [rows, setRows] = useState<Row[]>([]);
  const [over, setOver] = useState(false);
  const [collectionId, setCollectionId] = useState("");

  const start = async (files: { file: File; path: string }[]) => {
    const jobs = files.map(({ file, path }) => {
      const key = `${path}-${Date.now()}-${Math.random()}`;
      setRows((list) => [...list, { key, name: path, sent: 0, total: file.size, status: "queued" }]);
      const report = (p: Partial<Row>) => setRows((list) => list.map((r) => (r.key === key ? { ...r, ...p } : r)));
      // A failed upload keeps its session: Retry resumes it (only the parts not stored yet go).
      const run = (): Promise<void> => uploadFile(client, token, file, { collectionId: collectionId || null, path }, report)
        .catch((e: Error) => report({ status: "failed", error: e.message, retry: () => { report({ error: undefined, retry: undefined }); void run(); } }));
      return run;
    });
    const next = async (): Promise<void> => {
      const job = jobs.shift();
      if (job) { await job(); await next(); }
    };
    await Promise.all(Array.from({ length: PARALLEL }, next));
  };
  const picked = (list: FileList | null) =>
    start(Array.from(list ?? []).map((file) => ({ file, path: file.webkitRelativePath || file.name })));

  return (
    <section>
      <p>
        <CollectionPicker value={collectionId} onChange={setCollectionId} />{" "}
        <span className="muted">files go in at their paths (a folder's files at folder/…)</span>
      </p>
      <div className={`dropzone${over ? " over" : ""}`} data-testid="dropzone"
        onDragOver={(e) => { e.preventDefault(); setOver(true); }}
        onDragLeave={() => setOver(false)}
        onDrop={(e) => {
          e.preventDefault();
          setOver(false);
          // Entries must be taken while the drop event runs; files alone when the browser has no entries API.
          const items = e.dataTransfer.items;
          if (items?.length && typeof DataTransferItem.prototype.webkitGetAsEntry === "function") void droppedFiles(items).then(start);
          else void picked(e.dataTransfer.files);
        }}>
        <p>Drop files or folders here, or</p>
        <label className="button">
          Choose files
          <input type="file" multiple className="picker" data-testid="file-input" onChange={(e) => { void picked(e.target.files); e.target.value = ""; }} />
        </label>{" "}
        <label className="button">
          Choose a folder
          <input type="file" className="picker" data-testid="folder-input" {...{ webkitdirectory: "" }}
            onChange={(e) => { void picked(e.target.files); e.target.value = ""; }} />
        </label>
      </div>
      <table className="uploads">
        <tbody>
          {rows.map((r) => (
            <tr key={r.key} data-testid="upload-row">
              <td>{r.assetId ? <Link href={assetHref(r.assetId)}>{r.name}</Link> : r.name}</td>
              <td><progress max={r.total || 1} value={r.sent} /> {bytes(r.sent)} / {bytes(r.total)}</td>
              <td>{r.status}</td>
              <td>{r.assetStatus && <span className={`badge status-${r.assetStatus}`} data-testid="upload-status">{r.assetStatus}</span>}</td>
              <td>
                {r.error && <span role="alert" className="error">{r.error}</span>}{" "}
                {r.retry && <button type="button" onClick={r.retry}>Retry</button>}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

/** The collection uploads go into: the one named exactly what is typed, then the newest 50 whose
 *  name contains it (a lab has more than a list can hold); the one chosen kept while another search runs. */
function CollectionPicker({ value, onChange }: { value: string; onChange: (id: string) => void }) {
  const [typed, setTyped] = useState("");
  const [name, setName] = useState<string | null>(null);
  const [chosen, setChosen] = useState<{ id: string; name: string } | null>(null);
  useEffect(() => {
    const timer = setTimeout(() => setName(typed.trim() || null), 300);
    return () => clearTimeout(timer);
  }, [typed]);
  const [{ data }] = useQuery({ query: CollectionListDocument, variables: { nameContains: name, first: 50 } });
  const [{ data: exact }] = useQuery({ query: CollectionByNameDocument, variables: { name: name ?? "" }, pause: name === null });
  const named = name === null ? [] : exact?.collections.edges.map((e) => e.node) ?? [];
  const found = [...named, ...(data?.collections.edges.map((e) => e.node) ?? []).filter((c) => !named.some((n) => n.id === c.id))];
  const options = chosen && value === chosen.id && !found.some((c) => c.id === chosen.id) ? [chosen, ...found] : found;
  // A collection's exact name typed chooses it (once per name typed: "none" picked after it stays);
  // typing the name and uploading had put the files into no collection, saying nothing.
  const choseFor = useRef<string | null>(null);
  const exactMatch = named.find((c) => c.name === name);
  useEffect(() => {
    if (!exactMatch || choseFor.current === exactMatch.name) return;
    choseFor.current = exactMatch.name;
    setChosen({ id: exactMatch.id, name: exactMatch.name });
    onChange(exactMatch.id);
  }, [exactMatch, onChange]);
  return (
    <>
      <input aria-label="Find a collection" placeholder="Find a collection…" value={typed} onChange={(e) => setTyped(e.target.value)} />{" "}
      <label>
        Into collection{" "}
        <select aria-label="Into collection" value={value} onChange={(e) => {
          const picked = options.find((c) => c.id === e.target.value);
          setChosen(picked ? { id: picked.id, name: picked.name } : null);
          onChange(e.target.value);
        }}>
          <option value="">none</option>
          {options.map((c) => <option key={c.id} value={c.id}>{c.name}</option>)}
        </select>
      </label>
    </>
  );
}
