// The edges of a keypoints record's skeleton. The annotation schema has no place for one (its labels
// are name, display name, colour), so a COCO import keeps the category's skeleton on each keypoints
// record, as `attributes.skeleton` (graphlake_client/coco_shapes.py): pairs of 1-based keypoint
// indices, as COCO writes them. Pairs of keypoint names are read too, for records made by hand.
type Point = { name?: string | null; x: number; y: number; visible?: boolean | null };

export function skeletonEdges(attributes: unknown, points: Point[]): [Point, Point][] {
  const skeleton = (attributes as { skeleton?: unknown } | null)?.skeleton;
  if (!Array.isArray(skeleton)) return [];
  const find = (end: unknown): Point | undefined =>
    typeof end === "number" ? points[end - 1] : typeof end === "string" ? points.find((p) => p.name === end) : undefined;
  const edges: [Point, Point][] = [];
  for (const pair of skeleton) {
    if (!Array.isArray(pair) || pair.length !== 2) continue;  // someone else's attribute: drawn as far as it reads
    const [a, b] = [find(pair[0]), find(pair[1])];
    // An edge to a keypoint that is not visible is not drawn, as the keypoint itself is not.
    if (a && b && a.visible !== false && b.visible !== false) edges.push([a, b]);
  }
  return edges;
}
