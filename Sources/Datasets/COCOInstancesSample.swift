// COCO instances as augmentation samples: polygons rasterized after the geometric transform, RLEs moved as bitmaps.
// Corresponds to detectron2's annotations_to_instances / transform_instance_annotations (docs/model.md#augmentation: masks rasterized after the transform).

extension COCOInstances {
    /// Image `index` decoded with its annotations as `.instances`. Polygon objects are `.deferred`: their
    /// vertices are mapped with the transform and rasterized at the output size with the COCO rule
    /// (coordinates outside the output are clipped by the rasterizer, where detectron2 first intersects the
    /// polygon with the crop box; both keep exactly the inside area, edge pixels may differ).
    /// RLE objects (crowd regions, compressed strings) are decoded at the image size and moved as bitmaps.
    public func sample(_ index: Int) throws -> Sample {
        let record = images[index]
        let image = try loadImage(path: imagePath(ofImage: index), mode: .rgb)
        guard image.width == record.width && image.height == record.height else {
            throw DataError(file: imagePath(ofImage: index), record: "image \(record.id)",
                            problem: "image is \(image.width)×\(image.height) but the JSON says \(record.width)×\(record.height)")
        }
        var objects: [InstanceAnnotation] = []
        for a in annotations(ofImage: index) {
            let mask: InstanceMask
            switch a.segmentation {
            case .polygons(let parts):
                mask = .deferred(ClosureMaskRasterizer { w, h, t in
                    let moved = parts.map { part -> [Double] in
                        var out = part
                        var j = 0
                        while j + 1 < out.count {
                            let p = t.apply(x: out[j], y: out[j + 1])
                            out[j] = p.x; out[j + 1] = p.y
                            j += 2
                        }
                        return out
                    }
                    return COCORLE.polygons(moved, height: h, width: w).decode()
                })
            default:
                do {
                    mask = .bitmap(try a.segmentation.rle(imageHeight: record.height, imageWidth: record.width).decode())
                } catch {
                    throw DataError(file: annotationFile, record: "annotation \(a.id)", problem: "\(error)")
                }
            }
            objects.append(InstanceAnnotation(id: a.id, classIndex: a.categoryIndex, isCrowd: a.isCrowd, mask: mask))
        }
        return Sample(imageId: record.id, image: image, targets: .instances(objects))
    }
}
