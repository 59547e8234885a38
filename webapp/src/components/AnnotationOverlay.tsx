// An image with its annotation records drawn over it in SVG, in the image's own pixel coordinates
// (the viewBox is the natural size, so the shapes scale with the image). One checkbox per
// annotation set: ground truth and predictions can be compared by toggling.
// Who made a record shows in its line, not in colour alone (the colour is its label's): a person's
// solid, a model's dashed with its score beside it, a program's (derived) dotted, a ✓ beside a
// verified one. Who made it, not its set's purpose: a person's correction in a set of predictions is
// a person's (the purpose shows as text, beside the set's switch, in the tooltip and in the table).
// The records corrections replaced are left out unless asked for, then drawn faded. A label is
// drawn in the colour its set's schema gives it, else in one of the app's palette.
import { useMemo, useState } from "react";
import { useMutation, useQuery } from "urql";

import { errorText, safeUrl } from "../client";
import { SetLabelColoursDocument, VerifyRecordsDocument, type AnnotationShapeFragment } from "../generated/graphql";
import { labelColour } from "../format";
import { useMask } from "../maskOutline";
import { skeletonEdges } from "../skeleton";

/** Each record source kind's line (an SVG dash array, in screen pixels) and its name in the legend. */
const SOURCES: Record<string, [string | undefined, string]> = {
  HUMAN: [undefined, "by a person"], MODEL: ["6 4", "by a model (score shown)"], DERIVED: ["2 4", "derived by a program"],
};

export function AnnotationOverlay({ src, records, superseded, draw = true, canVerify }: {
  src: string; records: AnnotationShapeFragment[]; superseded: AnnotationShapeFragment[]; draw?: boolean; canVerify: boolean;
}) {
  // The image's natural size, and how many of its pixels make one on screen (for the captions' size).
  const [size, setSize] = useState<{ w: number; h: number; px: number } | null>(null);
  const [withSuperseded, setWithSuperseded] = useState(false);
  const all = useMemo(() => (withSuperseded ? [...records, ...superseded] : records), [records, superseded, withSuperseded]);
  const sets = useMemo(() => [...new Map(all.map((r) => [r.set.id, r.set])).values()], [all]);
  const colourOf = useSchemaColours(sets.map((s) => s.id));
  const [hidden, setHidden] = useState<Set<string>>(new Set());
  const shown = draw ? all.filter((r) => r.geometry && !hidden.has(r.set.id)) : [];
  const toggle = (id: string) => setHidden((old) => {
    const next = new Set(old);
    if (!next.delete(id)) next.add(id);
    return next;
  });
  return (
    <div>
      <div className="sets">
        {sets.map((s) => (
          <label key={s.id}>
            <input type="checkbox" checked={!hidden.has(s.id)} onChange={() => toggle(s.id)} /> {s.name}{" "}
            <span className="muted">({s.purpose})</span>
          </label>
        ))}
        {superseded.length > 0 && (
          <label>
            <input type="checkbox" checked={withSuperseded} onChange={() => setWithSuperseded(!withSuperseded)} />{" "}
            Show superseded <span className="muted">({superseded.length} corrected)</span>
          </label>
        )}
      </div>
      <ul className="legend" data-testid="legend">
        {[...new Set(shown.map((r) => r.label ?? r.kind))].map((label) => (
          <li key={label}><span className="swatch" style={{ background: colourOf(shown.find((r) => (r.label ?? r.kind) === label)!) }} /> {label}</li>
        ))}
        {[...new Set(shown.map((r) => r.source.kind))].map((kind) => (
          <li key={kind} data-source={kind}>
            <svg className="line" viewBox="0 0 24 8" aria-hidden="true">
              <line x1="0" y1="4" x2="24" y2="4" stroke="currentColor" strokeWidth="2" strokeDasharray={SOURCES[kind]?.[0]} />
            </svg>{" "}
            {SOURCES[kind]?.[1] ?? kind}
          </li>
        ))}
        {shown.some((r) => r.verified) && <li>✓ verified</li>}
        {shown.some((r) => r.supersededAt) && <li><span className="superseded">faded</span>: superseded</li>}
      </ul>
      <div className="overlay">
        <img src={src} alt="" onLoad={(e) => {
          const img = e.currentTarget;
          setSize({ w: img.naturalWidth, h: img.naturalHeight, px: img.naturalWidth / (img.clientWidth || img.naturalWidth) });
        }} />
        {size && (
          <svg viewBox={`0 0 ${size.w} ${size.h}`} preserveAspectRatio="none" data-testid="annotation-overlay">
            {shown.map((r) => <Shape key={r.id} record={r} colour={colourOf(r)} size={size} />)}
          </svg>
        )}
      </div>
      <Records records={all} colourOf={colourOf} canVerify={canVerify} />
    </div>
  );
}

/** The records as a table: score, source and verification, and (for a CONTRIBUTOR) a Verify button. */
function Records({ records, colourOf, canVerify }: {
  records: AnnotationShapeFragment[]; colourOf: (r: AnnotationShapeFragment) => string; canVerify: boolean;
}) {
  const [{ fetching, error }, verify] = useMutation(VerifyRecordsDocument);
  if (!records.length) return null;
  return (
    <>
      {error && <p role="alert" className="error">{errorText(error)}</p>}
      <table className="events records" data-testid="records">
        <thead><tr><th>Label</th><th>Kind</th><th>Score</th><th>Set</th><th>Source</th><th>Verified</th></tr></thead>
        <tbody>
          {records.map((r) => (
            <tr key={r.id} data-testid="record-row" data-kind={r.kind} className={r.supersededAt ? "superseded" : undefined}>
              <td><span className="swatch" style={{ background: colourOf(r) }} /> {r.label}</td>
              <td>{r.kind}</td>
              <td>{r.score?.toFixed(2) ?? ""}</td>
              <td>{r.set.name} <span className="muted">({r.set.purpose})</span></td>
              <td>{r.source.kind} {r.source.name}</td>
              <td>
                {r.verified ? "✓ verified" : "not verified"}{" "}
                {r.supersededAt && <span className="muted">superseded</span>}
                {canVerify && !r.supersededAt && (
                  // Not `disabled` while it runs: a disabled button loses the keyboard's focus to the page.
                  <button type="button" aria-disabled={fetching}
                          onClick={() => { if (!fetching) verify({ ids: [r.id], verified: !r.verified }); }}>
                    {r.verified ? "Unverify" : "Verify"}
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

/** A record's colour: its label's in its set's schema, else the palette's for its label (or kind). */
function useSchemaColours(setIds: string[]): (record: AnnotationShapeFragment) => string {
  const [{ data }] = useQuery({ query: SetLabelColoursDocument, variables: { ids: setIds }, pause: !setIds.length });
  const bySet = useMemo(() => {
    const found = new Map<string, Map<string, string>>();
    for (const node of data?.nodes ?? []) {
      if (node?.__typename !== "AnnotationSet") continue;  // a set deleted meanwhile is null
      found.set(node.id, new Map(node.schema.labels.filter((l) => l.color).map((l) => [l.name, l.color!])));
    }
    return found;
  }, [data]);
  return (record) => (record.label && bySet.get(record.set.id)?.get(record.label)) || labelColour(record.label ?? record.kind);
}

type Size = { w: number; h: number; px: number };  // the image's natural size, and its pixels per screen pixel

function Shape({ record, colour, size }: { record: AnnotationShapeFragment; colour: string; size: Size }) {
  const g = record.geometry;
  const { px } = size;
  const stroke = Math.max(size.w, size.h) / 300;
  const [dash] = SOURCES[record.source.kind] ?? [undefined];
  const score = record.score != null ? record.score.toFixed(2) : "";
  const title = <title>{[record.label ?? record.kind, `in ${record.set.name} (${record.set.purpose})`,
    `by ${record.source.kind} ${record.source.name}`, score, record.verified && "verified", record.supersededAt && "superseded"]
    .filter(Boolean).join(", ")}</title>;
  // Drawn in the image's pixels but stroked in the screen's (non-scaling-stroke): a line of a 160-px
  // image scaled by its size was half a screen pixel wide, a 4000-px one's a thick smear.
  const line = { stroke: colour, strokeWidth: 2, fill: "none", vectorEffect: "non-scaling-stroke", strokeDasharray: dash };
  const common = { ...line, "data-kind": record.kind, "data-label": record.label ?? "", "data-purpose": record.set.purpose,
    "data-source": record.source.kind };
  const points = (list: { x: number; y: number }[]) => list.map((p) => `${p.x},${p.y}`).join(" ");
  // The score and a ✓ (verified) beside the shape's first point, 12 screen pixels high, white-edged.
  const at = g?.__typename === "BBox" ? g : g?.__typename === "RotatedBBox" ? { x: g.cx - g.width / 2, y: g.cy - g.height / 2 }
    : g && "points" in g ? g.points.find((p) => !("visible" in p) || p.visible !== false) : undefined;
  const text = [score, record.verified && "✓"].filter(Boolean).join(" ");
  const caption = at && text && (
    <text x={at.x} y={Math.max(at.y - 3 * px, 12 * px)} fontSize={12 * px} fill={colour} stroke="white" strokeWidth={3}
      paintOrder="stroke" vectorEffect="non-scaling-stroke" data-caption="">{text}</text>
  );
  return <g opacity={record.supersededAt ? 0.4 : undefined} data-superseded={record.supersededAt ? "" : undefined}>{drawn()}{caption}</g>;

  function drawn() {
    switch (g?.__typename) {
      case "BBox":
        return <rect x={g.x} y={g.y} width={g.width} height={g.height} {...common}>{title}</rect>;
      case "RotatedBBox":
        return (
          <rect x={g.cx - g.width / 2} y={g.cy - g.height / 2} width={g.width} height={g.height}
            transform={`rotate(${g.angle} ${g.cx} ${g.cy})`} {...common}>{title}</rect>
        );
      case "Polygon":
        return <polygon points={points(g.points)} {...common} fill={colour} fillOpacity={0.2}>{title}</polygon>;
      case "Polyline":
        return <polyline points={points(g.points)} {...common}>{title}</polyline>;
      case "Keypoints":
        // Skeleton edges first, so the keypoints sit on top of them.
        return (
          <g {...common} fill={colour}>
            {title}
            {skeletonEdges(record.attributes, g.points).map(([a, b], i) => (
              <line key={`edge-${i}`} x1={a.x} y1={a.y} x2={b.x} y2={b.y} data-skeleton="" />
            ))}
            {g.points.filter((p) => p.visible !== false).map((p, i) => <circle key={i} cx={p.x} cy={p.y} r={stroke * 2} />)}
          </g>
        );
      case "Mask":
        return <MaskShape record={record} assetId={g.asset.id} url={safeUrl(g.asset.downloadUrl)} colour={colour} size={size}
          line={line} title={title} />;
      default:
        return null;
    }
  }
}

/** A mask: its image as a luminance mask over a rectangle of the label's colour (its white pixels show
 *  in that colour, its black ones not at all), outlined as the other shapes are (maskOutline.ts: one
 *  download of its bytes serves both). */
function MaskShape({ record, assetId, url, colour, size, line, title }: {
  record: AnnotationShapeFragment; assetId: string; url: string | null; colour: string; size: Size;
  line: React.SVGProps<SVGPathElement>; title: React.ReactNode;
}) {
  const mask = useMask(assetId, url);
  if (!mask) return null;
  const { outline } = mask;
  const maskId = `mask-${record.id.replace(/[^\w-]/g, "")}`;
  return (
    <g data-kind={record.kind} data-label={record.label ?? ""} data-purpose={record.set.purpose} data-source={record.source.kind}>
      {title}
      <mask id={maskId}><image href={mask.href} width="100%" height="100%" preserveAspectRatio="none" onError={mask.failed} /></mask>
      <rect width="100%" height="100%" fill={colour} opacity={0.5} mask={`url(#${maskId})`} />
      {/* Traced in the mask's pixels, which are stretched over the image's (as the image above is). */}
      {outline && <path d={outline.d} transform={`scale(${size.w / outline.w} ${size.h / outline.h})`} {...line} data-outline="" />}
    </g>
  );
}
